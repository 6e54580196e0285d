"""What the test suites share, importable as `helpers` (pyproject puts tests/ on pytest's pythonpath; the
in-container run puts /app/tests on PYTHONPATH). Test modules import from here, never from each other
or from a conftest.py; fixtures stay in conftest.py files and in the plugin `helpers.engine_fixtures`.

http_client.py is plain standard library, as the tests that run inside the image import it too.
"""
