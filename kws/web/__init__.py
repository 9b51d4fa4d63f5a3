"""``kws serve --http``: a page to see, tune and teach kws in a browser (``kws.web.server``).

The page (``static/``: HTML, JavaScript, CSS; no build step, nothing fetched from elsewhere)
ships in the wheel. It needs the ``web`` extra (aiohttp); nothing here imports aiohttp at
import time, so ``kws`` without the extra still imports every module.
"""
