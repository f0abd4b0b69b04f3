"""Run One API on one machine: `python app.py [--port 3000] [--log-dir DIR] [--version] [--help]`.

Applies the migrations, creates root on first start, then serves with gevent's WSGI server.
"""

import os
import sys

if __name__ == "__main__" and not {"--help", "-h", "--version"} & set(sys.argv[1:]):
    from gevent import monkey

    monkey.patch_all()  # before anything imports socket, ssl or requests

import argparse  # noqa: E402

from oneapi import create_app  # noqa: E402
from oneapi.config import VERSION  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python app.py", description="One API: an OpenAI-compatible LLM gateway.")
    parser.add_argument("--port", type=int, default=3000, help="port to listen on (the PORT env var wins; default 3000)")
    parser.add_argument("--log-dir", default="./logs", help="folder for log files (default ./logs; '' for stdout only)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        print(VERSION)
        return
    app = create_app(port=args.port, log_dir=args.log_dir)
    with app.app_context():
        from oneapi import bootstrap

        if app.config["NODE_TYPE"] == "slave":  # the master migrates; a slave only waits for the database
            bootstrap.wait_for_database()
        else:
            bootstrap.prepare()
    from gevent.pywsgi import WSGIServer

    host = os.environ.get("HOST", "0.0.0.0")
    port = app.config["PORT"]
    server = WSGIServer((host, port), app, log=None)
    app.logger.info("One API %s listening on http://%s:%s", VERSION, host, port)
    server.serve_forever()


if __name__ == "__main__":
    main()
