"""The images' HEALTHCHECK, part of the template (not of the app in src/): exit 0 when the app
answers 200 on http://127.0.0.1:$PORT/health, 1 otherwise. Any app that keeps the README's app
contract passes it.

The call goes straight to the app: a proxy set for the app (http_proxy or HTTP_PROXY in .env) would
otherwise carry this local call too, and a healthy container would be reported unhealthy.
"""

import os
import sys
import urllib.request


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8888')}/health"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as error:  # no answer, or an HTTP error status (a 503 while the app gets ready)
        print(f"healthcheck: {url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
