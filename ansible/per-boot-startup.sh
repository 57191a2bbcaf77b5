#!/bin/bash
# Per-boot provisioning, the fallback when no image has been baked: GCE_STARTUP_SCRIPT_PATH names
# this file and GCE_IMAGE a stock Debian 12 image. It becomes instance metadata, so it must never
# hold a secret (the controller refuses one that looks like a credential). Expect minutes before
# SSH answers: raise GCE_BOOT_TIMEOUT_SECONDS to 900.
#
# It installs ansible-core and runs provision.yml on this VM from the repository below. Edit the
# three lines below before use; the controller's public key is not a secret.
set -euo pipefail
REPO=https://github.com/OWNER/agent-work.git
# A release tag (vX.Y.Z) or a full 40-character commit id of REPO, never a branch such as main: every
# VM then runs the role you reviewed, not whatever was pushed last.
REF=EDIT-ME
CONTROLLER_KEY="ssh-ed25519 AAAA... agent-work-controller"

[[ "$CONTROLLER_KEY" == *AAAA...* ]] && { echo "agent-work: edit CONTROLLER_KEY in the startup script; not provisioning" >&2; exit 1; }
[[ "$REF" =~ ^(v[0-9]+\.[0-9]+\.[0-9]+|[0-9a-f]{40})$ ]] || { echo "agent-work: set REF in the startup script to a release tag or a commit id (not a branch); not provisioning" >&2; exit 1; }
[[ -e /var/lib/agent-work-provisioned ]] && exit 0

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends ansible-core git
ansible-pull -U "$REPO" -C "$REF" -i localhost, -c local \
  -e controller_ssh_public_key="$CONTROLLER_KEY" ansible/provision.yml
touch /var/lib/agent-work-provisioned
