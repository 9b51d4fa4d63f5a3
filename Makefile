# The two set-up commands of the README. Each installs what it needs, then runs.
#   make listen   system audio library + the runtime (no TensorFlow), then `kws listen`
#   make test     everything for training and the tests, then the test suite
#   make page     the runtime and the web extra (aiohttp), then the page: `kws serve --http`
#   make voices   every speech engine and voice `kws enroll` speaks with (see the README's
#                 licences): flite, festival and its voices, SVOX Pico from Debian non-free
# Python packages go into a virtual environment (.venv): Debian and Ubuntu refuse pip
# installs into the system Python. `. .venv/bin/activate` puts `kws` on your PATH.
#
# Installing is remembered in stamp files under .make/: apt-get and pip run again only when
# pyproject.toml or this Makefile changed (or after `make clean-env`), so `make test` in an
# edit-test loop goes straight to the tests.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMPS := .make
APT_RUNTIME := python3-venv libportaudio2 libsndfile1
# espeak-ng speaks the test words; PulseAudio is the virtual microphone of the e2e test; tmux is
# the real terminal of the live view's test; chromium is the real browser of the page's test
# (driven by Playwright for Python, which downloads no browser of its own).
APT_TEST := $(APT_RUNTIME) espeak-ng sox pulseaudio pulseaudio-utils libasound2-plugins tmux chromium

.PHONY: listen page test lint voices install-runtime install-test clean-env

listen: install-runtime
	$(PY) -m kws listen

page: $(STAMPS)/web
	$(PY) -m kws serve --http

# The README's test command: the whole suite on two processes (pytest-xdist; tests synchronise
# on events, not on time, so they share the machine); `-m "not train"` is the fast tier.
test: install-test
	$(PY) -m pytest -n 2

lint: install-test
	$(VENV)/bin/ruff check .

# The engines and voices of `kws enroll` (kws_train.synth), all free to use commercially.
# Pico is in Debian's non-free component (its lingware ships without source): on Debian,
# train/voices.sources enables contrib and non-free for this release; Ubuntu has it in multiverse.
# Not installed: Piper's voice (trained from data whose terms are unclear) and MBROLA voices
# (non-commercial).
APT_VOICES := espeak-ng sox flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
	libttspico-utils
voices:
	. /etc/os-release; if [ "$$ID" = debian ]; then \
	  sed "s/bookworm/$$VERSION_CODENAME/g" train/voices.sources | \
	  $(SUDO) tee /etc/apt/sources.list.d/kws-voices.sources >/dev/null; fi
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_VOICES)

install-runtime: $(STAMPS)/runtime
install-test: $(STAMPS)/test

$(STAMPS)/apt-runtime: Makefile
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_RUNTIME)
	mkdir -p $(STAMPS) && touch $@

$(STAMPS)/apt-test: Makefile
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_TEST)
	mkdir -p $(STAMPS) && touch $@

$(STAMPS)/runtime: $(STAMPS)/apt-runtime pyproject.toml Makefile
	[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e .
	touch $@

$(STAMPS)/web: $(STAMPS)/runtime
	$(PY) -m pip install -q -e ".[web]"
	touch $@

$(STAMPS)/test: $(STAMPS)/apt-test pyproject.toml Makefile
	[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e ".[test,peers]"
	touch $@

clean-env:
	rm -rf $(STAMPS)
