# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean chromium

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch/torchvision are pinned to the releases on this machine's disk (a newer torch pulls a multi-GB build).
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[openclip,serve,scale,test]'
	touch $(STAMP)

# The browser tests drive the system Chromium through Playwright (never a Playwright download); install it when
# missing and we are root, otherwise those tests skip and say why.
CHROMIUM := $(shell command -v chromium || command -v chromium-browser)

install: $(STAMP) chromium

chromium:
ifeq ($(CHROMIUM),)
	@if [ "$$(id -u)" = "0" ]; then apt-get install -y chromium || (apt-get update && apt-get install -y chromium); \
	else echo "note: no chromium found and not root: the browser tests will skip (apt-get install chromium)"; fi
endif

demo: $(STAMP)
	$(VENV)/bin/cir demo --workdir runs/demo
	@echo "next: put cir on your PATH with '. $(VENV)/bin/activate', then try: cir info --store runs/demo/store"

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
