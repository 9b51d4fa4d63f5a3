"""``kws serve``: a Wyoming wake-word service (``kws.serve``) for Home Assistant and satellites,
and with ``--http`` the page to see, tune and teach kws in a browser (``kws.web``), on the
same event loop: ``--http`` alone serves the page only, ``--http`` with ``--uri`` both.

Serves until Ctrl-C or SIGTERM (exit 0). Log lines on stderr: the words served, where it
listens (the page's URL, with its access token off localhost), each detection, each
connection closed for what it sent."""

from __future__ import annotations

import argparse
import logging
import time

from kws.cli import threshold_argument
from kws.config import Config
from kws.resources import install_hint

HELP = "a Wyoming wake-word service: Home Assistant and voice satellites stream audio, get the words"
DEFAULT_URI = "tcp://0.0.0.0:10400"  # Wyoming's wake-word port, as the reference servers use
DEFAULT_HTTP = "127.0.0.1:10401"  # the page: this machine only unless told otherwise
DEFAULT_MODELS = "~/.local/share/kws/models"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--uri",
                        help="where to listen: tcp://HOST:PORT (port 0: any free one) or unix://PATH "
                             f"(default: {DEFAULT_URI}, Wyoming's wake-word port on every interface; "
                             "with --http, none unless given)")
    parser.add_argument("--http", nargs="?", const=DEFAULT_HTTP, metavar="[HOST:]PORT",
                        help=f"serve the page (default: {DEFAULT_HTTP}; off localhost it needs the token "
                             "of the URL printed at start, and a browser needs --tls for its microphone)")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"),
                        help="https for the page (PEM files; a self-signed pair: see the README)")
    parser.add_argument("--models", metavar="DIR", default=DEFAULT_MODELS,
                        help="the one folder the page writes in: your words, their takes, saved "
                             "thresholds (default: %(default)s)")
    parser.add_argument("--model", metavar="DIR", action="append",
                        help="model bundle directory; repeat to serve several (each word in one only; "
                             "default: detector.model in the config)")
    parser.add_argument("--threshold", type=threshold_argument, metavar="T",
                        help="0.8 for every word, or per word: up=0.9,off=0.8 (the other words "
                             "keep theirs; default: per word, from the config, else the bundle)")
    parser.add_argument("--zeroconf", nargs="?", const="kws", metavar="NAME",
                        help="announce the service on the network (_wyoming._tcp) under NAME "
                             "(default: kws), so Home Assistant discovers it and shows NAME: give each "
                             f"kws server its own ({install_hint('zeroconf')})")
    parser.add_argument("--verbose", action="store_true",
                        help="also log each ignored event (what a client sends that kws does not use)")


def run(args: argparse.Namespace, config: Config) -> int:
    from kws.serve import Service, load_models, serve_forever, server_for

    uri = args.uri or (None if args.http else DEFAULT_URI)
    if uri is not None:
        server_for(uri, bool(args.zeroconf))  # a wrong --uri is one line before models load
    if args.http or args.tls:
        from kws.web import check_page_arguments

        check_page_arguments(args, uri)  # so are the page's
    logging.basicConfig(format="%(asctime)s kws: %(message)s", datefmt="%H:%M:%S", level=logging.INFO)
    log = logging.getLogger("kws.serve")
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)  # kws's lines only, not asyncio's
    service = Service(load_models(config, args.model, args.threshold), name=args.zeroconf or "kws")
    for model in service.models:
        log.info("model %s (version %s): %s", model.bundle.path, model.version,
                 ", ".join(f"{w} ({t:.2f})" for w, t in model.thresholds.items()))
    started = time.monotonic()
    if args.http:
        from kws.web import serve_page

        serve_page(args, config, service, uri, log)
    else:
        serve_forever(service, uri, args.zeroconf,
                      on_ready=lambda uri: log.info("serving on %s%s (Ctrl-C to stop)", uri,
                                                    f", announced as {args.zeroconf}" if args.zeroconf else ""))
    log.info("stopped after %.0f s: %d connections, %d detections", time.monotonic() - started,
             service.connections, service.detections)
    return 0
