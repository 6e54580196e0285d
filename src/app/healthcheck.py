"""The image's HEALTHCHECK: exit 0 when the server answers /health on $PORT, 1 otherwise."""

import os
import sys
import urllib.request


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8888')}/health"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 (a fixed local URL)
            return 0 if response.status == 200 else 1
    except OSError as error:
        print(f"healthcheck: {url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
