#!/usr/bin/env bash
# Bakes the image family agent-work workers boot from, so a job's VM is ready in seconds instead of
# installing Node, git and the agent for minutes:
#
#   ansible/bake-image.sh PROJECT ZONE CONTROLLER_PUBLIC_KEY_FILE [FAMILY]
#
# 1. starts a temporary VM from Debian 12 (no service account, no external IP, OS Login on),
# 2. runs provision.yml on it over SSH through IAP (gcloud start-iap-tunnel),
# 3. stops it and makes an image of its disk in FAMILY (default agent-work-worker),
# 4. deletes the temporary VM, whatever happened (trap).
#
# Needs: gcloud (logged in, with compute.instances.* and compute.images.create in PROJECT),
# ansible-playbook (ansible-core 2.14+), the firewall rule from terraform/ that admits IAP to tcp:22
# of the worker account, and Cloud NAT (for the package downloads). The VM runs as the worker
# account so the firewall rule applies; that account holds no role.
set -euo pipefail

usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}
[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && usage 0
[[ $# -lt 3 ]] && usage 2

PROJECT=$1
ZONE=$2
PUBLIC_KEY_FILE=$3
FAMILY=${4:-agent-work-worker}
HERE=$(cd "$(dirname "$0")" && pwd)
STAMP=$(date -u +%Y%m%d-%H%M%S)
VM="agent-work-bake-${STAMP}"
IMAGE="${FAMILY}-${STAMP}"
WORKER_SA="agent-work-worker@${PROJECT}.iam.gserviceaccount.com"
SSH_USER=${BAKE_SSH_USER:-$(gcloud config get-value account 2>/dev/null | sed 's/[@.]/_/g')}

[[ -r "$PUBLIC_KEY_FILE" ]] || { echo "cannot read $PUBLIC_KEY_FILE (the public half of GCE_SSH_PRIVATE_KEY_PATH)" >&2; exit 2; }
command -v gcloud >/dev/null || { echo "gcloud is needed: https://cloud.google.com/sdk/docs/install" >&2; exit 2; }
command -v ansible-playbook >/dev/null || { echo "ansible-playbook is needed: apt-get install --no-install-recommends ansible-core" >&2; exit 2; }

cleanup() {
  echo "deleting the temporary VM ${VM}" >&2
  gcloud compute instances delete "$VM" --project "$PROJECT" --zone "$ZONE" --quiet >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "starting ${VM} in ${ZONE}" >&2
gcloud compute instances create "$VM" \
  --project "$PROJECT" --zone "$ZONE" \
  --machine-type e2-standard-2 \
  --image-family debian-12 --image-project debian-cloud \
  --boot-disk-size 20GB --boot-disk-type pd-balanced \
  --service-account "$WORKER_SA" --scopes cloud-platform \
  --no-address \
  --shielded-secure-boot --shielded-vtpm --shielded-integrity-monitoring \
  --metadata enable-oslogin=TRUE,block-project-ssh-keys=TRUE,enable-guest-attributes=TRUE \
  --labels agent-work-bake="${STAMP}" \
  --max-run-duration 3600s --instance-termination-action DELETE

# Ansible reaches the VM through an IAP tunnel; OS Login maps the gcloud account to SSH_USER.
PROXY="gcloud compute start-iap-tunnel ${VM} 22 --listen-on-stdin --project ${PROJECT} --zone ${ZONE} --verbosity=warning"
for attempt in $(seq 1 30); do
  if gcloud compute ssh "$VM" --project "$PROJECT" --zone "$ZONE" --tunnel-through-iap --command true --quiet >/dev/null 2>&1; then break; fi
  [[ $attempt == 30 ]] && { echo "SSH to ${VM} never answered" >&2; exit 1; }
  sleep 10
done

ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_SSH_TRANSFER_METHOD=piped ansible-playbook \
  -i "${VM}," \
  -u "$SSH_USER" \
  --private-key "${HOME}/.ssh/google_compute_engine" \
  --ssh-common-args "-o ProxyCommand='${PROXY}'" \
  -e controller_ssh_public_key="$(cat "$PUBLIC_KEY_FILE")" \
  "${HERE}/provision.yml"

# The agent CLIs' versions the role installed, as labels `agent-work doctor` reads from the image.
CLI_LABELS="$(python3 "${HERE}/agent-cli-labels.py" "${HERE}/../agent-clis/package.json")"

echo "stopping ${VM} and making image ${IMAGE} in family ${FAMILY}" >&2
gcloud compute instances stop "$VM" --project "$PROJECT" --zone "$ZONE" --quiet
gcloud compute images create "$IMAGE" \
  --project "$PROJECT" \
  --source-disk "$VM" --source-disk-zone "$ZONE" \
  --family "$FAMILY" \
  --shielded-secure-boot \
  --labels "agent-work-image=${STAMP},${CLI_LABELS}"

echo "done: projects/${PROJECT}/global/images/family/${FAMILY} → ${IMAGE}" >&2
echo "older images stay in the family; delete them with: gcloud compute images list --filter=family=${FAMILY}" >&2
