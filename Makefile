# One task runner; CI calls `make test` through .ci/run.
.PHONY: run test lint bench web

run:            ## install what is needed and serve the embedded model on 127.0.0.1:8000
	scripts/bootstrap.sh run
	.venv/bin/lmstream serve $(ARGS)

test:           ## install what is needed and run the whole suite
	scripts/bootstrap.sh test
	.venv/bin/python -m ruff check src tests
	.venv/bin/python -m mypy
	.venv/bin/python -m pytest -q -p no:cacheprovider $(ARGS)

lint:
	.venv/bin/python -m ruff check src tests
	.venv/bin/python -m mypy

web:            ## rebuild the web chat and run its unit tests (vitest)
	scripts/build-web.sh --force
	cd web && npm test

bench:          ## every benchmark scenario; rewrites bench/results/*.json
	scripts/bootstrap.sh test
	.venv/bin/python -m bench $(ARGS)
