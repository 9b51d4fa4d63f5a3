"""``kws serve``: a Wyoming wake-word service (``kws.serve``) for Home Assistant and satellites.

Serves until Ctrl-C or SIGTERM (exit 0). Log lines on stderr: the words served, where it
listens, each detection, each connection closed for what it sent."""

from __future__ import annotations

import argparse
import logging
import time

from kws.cli import threshold_argument
from kws.config import Config

HELP = "a Wyoming wake-word service: Home Assistant and voice satellites stream audio, get the words"
DEFAULT_URI = "tcp://0.0.0.0:10400"  # Wyoming's wake-word port, as the reference servers use


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--uri", default=DEFAULT_URI,
                        help="where to listen: tcp://HOST:PORT (port 0: any free one) or unix://PATH "
                             "(default: %(default)s, Wyoming's wake-word port on every interface)")
    parser.add_argument("--model", metavar="DIR", action="append",
                        help="model bundle directory; repeat to serve several (each word in one only; "
                             "default: detector.model in the config)")
    parser.add_argument("--threshold", type=threshold_argument, metavar="T",
                        help="0.8 for every word, or per word: up=0.9,off=0.8 (the other words "
                             "keep theirs; default: per word, from the config, else the bundle)")
    parser.add_argument("--zeroconf", nargs="?", const="kws", metavar="NAME",
                        help="announce the service on the network (_wyoming._tcp) under NAME "
                             "(default: kws), so Home Assistant discovers it (pip install 'kws[zeroconf]')")
    parser.add_argument("--verbose", action="store_true",
                        help="also log each ignored event (what a client sends that kws does not use)")


def run(args: argparse.Namespace, config: Config) -> int:
    from kws.serve import Service, load_models, serve_forever, server_for

    server_for(args.uri, bool(args.zeroconf))  # a wrong --uri is one line before models load
    logging.basicConfig(format="%(asctime)s kws: %(message)s", datefmt="%H:%M:%S", level=logging.INFO)
    log = logging.getLogger("kws.serve")
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)  # kws's lines only, not asyncio's
    service = Service(load_models(config, args.model, args.threshold))
    for model in service.models:
        log.info("model %s (version %s): %s", model.bundle.path, model.version,
                 ", ".join(f"{w} ({t:.2f})" for w, t in model.thresholds.items()))
    started = time.monotonic()
    serve_forever(service, args.uri, args.zeroconf,
                  on_ready=lambda uri: log.info("serving on %s%s (Ctrl-C to stop)", uri,
                                                f", announced as {args.zeroconf}" if args.zeroconf else ""))
    log.info("stopped after %.0f s: %d connections, %d detections", time.monotonic() - started,
             service.connections, service.detections)
    return 0
