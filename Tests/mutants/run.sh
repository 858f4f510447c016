#!/usr/bin/env bash
# Mutation check (see run.py and mutations.txt): run.sh [--check] [--only ID,...] [--scratch DIR]
exec python3 "$(dirname "$0")/run.py" "$@"
