# The two set-up commands of the README. Each installs what it needs, then runs.
#   make listen   system audio library + the runtime (no TensorFlow), then `kws listen`
#   make test     everything for training and the tests, then the test suite
# Python packages go into a virtual environment (.venv): Debian and Ubuntu refuse pip
# installs into the system Python. `. .venv/bin/activate` puts `kws` on your PATH.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV ?= .venv
PY := $(VENV)/bin/python
APT_RUNTIME := python3-venv libportaudio2 libsndfile1
# espeak-ng + sox speak the test words; PulseAudio is the virtual microphone of the e2e test.
APT_TEST := $(APT_RUNTIME) espeak-ng sox pulseaudio pulseaudio-utils libasound2-plugins

.PHONY: listen test install-runtime install-test

listen: install-runtime
	$(PY) -m kws listen

test: install-test
	$(PY) -m pytest

install-runtime:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_RUNTIME)
	[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e .

install-test:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_TEST)
	[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e ".[test]"
