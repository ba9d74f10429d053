#!/bin/sh
# The image's entry point: the variant's default settings (/etc/talker.env, KEY=VALUE lines written at
# build time) for those the environment does not set, then the service's module in place of this shell.
set -eu
while IFS='=' read -r key value; do
    [ -n "$key" ] || continue
    eval "set_already=\${$key+yes}"
    [ -n "$set_already" ] || export "$key=$value"
done < /etc/talker.env
exec python -m "$TALKER_MODULE" "$@"
