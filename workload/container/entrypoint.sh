#!/usr/bin/env bash
# PID 1 of the train and serve images: `cloud-ai-entrypoint train|serve [ARGS...]`.
#
# It turns the environment the cloud instances set into `cloud-ai` arguments, appends the explicit
# ARGS (argparse keeps the last value, so `docker run IMAGE --epochs 3` overrides EPOCHS), and runs the
# command as its child. PID 1 gets no default signal handling from the kernel, so this script forwards
# SIGTERM/SIGINT (spot preemption, `docker stop`) to the child and exits with the child's own status:
# the trainer's 75 (preempted, resumable) reaches whoever started the container.
#
#   train: MODEL_STORE, DATASET (data = $MODEL_STORE/datasets/$DATASET), MODEL_NAME, BACKBONE,
#          IMAGE_SIZE, EPOCHS, BATCH_SIZE, WEIGHTS; TF_CONFIG is read by TensorFlow itself.
#   serve: MODEL_STORE, MODEL_NAME; listens on 0.0.0.0:${PORT:-8501}.
set -euo pipefail

command=${1:?usage: cloud-ai-entrypoint train|serve [ARGS...]}
shift
args=()
flag() {  # flag OPTION VALUE: pass --OPTION VALUE when VALUE is set and non-empty
    if [[ -n ${2:-} ]]; then args+=("--$1" "$2"); fi
}

flag model-store "${MODEL_STORE:-}"
flag model-name "${MODEL_NAME:-}"
case $command in
    train)
        if [[ -n ${DATASET:-} ]]; then
            flag data "${MODEL_STORE:?DATASET is set but MODEL_STORE is not}/datasets/$DATASET"
        fi
        flag backbone "${BACKBONE:-}"
        flag image-size "${IMAGE_SIZE:-}"
        flag epochs "${EPOCHS:-}"
        flag batch-size "${BATCH_SIZE:-}"
        flag weights "${WEIGHTS:-}"
        ;;
    serve)
        args+=(--host 0.0.0.0 --port "${PORT:-8501}")
        ;;
    *)
        echo "cloud-ai-entrypoint: unknown command '$command' (expected train or serve)" >&2
        exit 2
        ;;
esac

cloud-ai "$command" "${args[@]}" "$@" &
child=$!
forwarded=0
# shellcheck disable=SC2317  # called from the traps below
forward() {
    forwarded=1
    kill -"$1" "$child" 2>/dev/null || true
}
trap 'forward TERM' TERM
trap 'forward INT' INT

status=0
wait "$child" || status=$?
# A trapped signal makes `wait` return early (128+n): wait again for the child's own exit status.
# 127 means the child's status was already reported, so the last one stands.
while ((forwarded)); do
    forwarded=0
    rc=0
    wait "$child" || rc=$?
    ((rc == 127)) || status=$rc
done
exit "$status"
