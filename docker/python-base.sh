#!/usr/bin/env bash
# The images' Python base, made locally (no registry pulls): Debian bookworm minbase with Python 3.11,
# venv, python-is-python3 and CA certificates, imported as an OCI image.
#   docker/python-base.sh IMAGE [MIRROR]
# Docs, man pages, locales and apt's lists are dropped: the images install nothing more with apt.
set -euo pipefail
image=${1:?usage: python-base.sh IMAGE [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3.11,python3-venv,python-is-python3,ca-certificates \
    bookworm "$root" "$mirror" >/dev/null
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/locale/* "$root"/usr/share/info/*
tar -C "$root" -c . | podman import --change 'CMD ["python3"]' - "$image" >/dev/null
echo "python base: $image ($(du -sh "$root" | cut -f1) unpacked)"
