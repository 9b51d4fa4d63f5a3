"""``kws serve --http``: a page to see, tune and teach kws in a browser (``kws.web.server``).

The page (``static/``: HTML, JavaScript, CSS; no build step, nothing fetched from elsewhere)
ships in the wheel. It needs the ``web`` extra (aiohttp), which only ``kws.web.server``
imports: this module checks for it first, so ``kws serve --http`` without the extra is one
line naming the install, and ``kws serve`` without ``--http`` never needs it.

Modules: ``server`` (routes, guards, serving), ``live`` (one browser's detector), ``replay``
(a dropped file), ``models`` (models offered, the one folder the page writes in, saved
thresholds), ``enrol`` (takes, and ``kws enroll`` as a background job).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging

from kws.config import Config
from kws.errors import KwsError
from kws.resources import install_hint


def check_page_arguments(args: argparse.Namespace, uri: str | None) -> None:
    """``kws serve``'s page options, each wrong one a ``KwsError`` in one line before the
    models load: the web extra missing, a bad ``--http``, ``--tls`` that does not load."""
    if not args.http:
        raise KwsError("--tls is for the page: give --http too")
    if uri is None and args.zeroconf:
        raise KwsError("--zeroconf announces the Wyoming port: give --uri with --http")
    if importlib.util.find_spec("aiohttp") is None:
        raise KwsError(f"--http needs the web extra (aiohttp is not installed): {install_hint('web')}")
    from kws.web.server import parse_http, tls_context

    parse_http(args.http)
    tls_context(args.tls)


def serve_page(args: argparse.Namespace, config: Config, service, uri: str | None,
               log: logging.Logger) -> None:
    """Serve the page (and the Wyoming ``service`` at ``uri`` if given) until Ctrl-C."""
    from kws.web.server import make_page, new_token, parse_http, serve_forever

    page = make_page(config, service.models, args.models, new_token(parse_http(args.http)[0]), args.config)
    folder = page.models.folder

    def ready(url: str, bound: str | None) -> None:
        if bound is not None:
            log.info("serving on %s%s", bound, f", announced as {args.zeroconf}" if args.zeroconf else "")
        log.info("page at %s (models folder %s; Ctrl-C to stop)", url, folder.path)

    serve_forever(page, args.http, args.tls, service, uri, args.zeroconf, ready)
