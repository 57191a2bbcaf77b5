# Google Cloud side of agent-work's gce backend. See README.md in this folder.
#
# Two service accounts:
# - the worker account, attached to every job VM, holds NO role anywhere: the agent on the VM is
#   treated as hostile and anything it can reach through the metadata server must be worthless.
#   (Per-job secrets, when used, are bound to it by the controller on that one secret at run time.)
# - the controller account holds one custom role with only the calls the backend makes, and may
#   attach the worker account to VMs (serviceAccountUser on that account alone, not the project).

locals {
  # Every API a resource below (or the controller at run time) calls. A fresh project has few of them
  # on, and enabling one takes a minute to propagate: every resource depends on this set, so a first
  # apply does not race it. (iam: service accounts and roles; cloudresourcemanager: project IAM and
  # the project lookup; monitoring: the budget's email channels.)
  apis = [
    "compute.googleapis.com",
    "secretmanager.googleapis.com",
    "iap.googleapis.com",
    "billingbudgets.googleapis.com",
    "iam.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "monitoring.googleapis.com",
  ]
  # The IAP TCP forwarding range (documented by Google; constant).
  iap_range = "35.235.240.0/20"
  # Per-job secrets are named agent-work-job-<job id> (src/backends/gce/gce-names.ts, jobSecretId).
  # Secret Manager names resources by project NUMBER in IAM conditions.
  job_secret_prefix = "projects/${data.google_project.this.number}/secrets/agent-work-job-"
}

resource "google_project_service" "apis" {
  for_each           = toset(local.apis)
  service            = each.value
  disable_on_destroy = false
}

resource "google_service_account" "worker" {
  account_id   = "agent-work-worker"
  display_name = "agent-work job VMs (no roles)"
  description  = "Attached to every agent-work job VM. Deliberately holds no IAM role."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "controller" {
  account_id   = "agent-work-controller"
  display_name = "agent-work controller"
  description  = "Creates and deletes job VMs and per-job secrets; reads the app's own secrets."
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_custom_role" "controller" {
  role_id     = "agentWorkController"
  title       = "agent-work controller"
  description = "Exactly the calls the gce backend and agent-work doctor make."
  permissions = [
    "compute.projects.get",
    "compute.zones.get",
    "compute.zones.list",
    "compute.machineTypes.get",
    "compute.images.get",
    "compute.images.getFromFamily",
    "compute.images.useReadOnly",
    "compute.instances.create",
    "compute.instances.delete",
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.getGuestAttributes",
    "compute.instances.setLabels",
    "compute.instances.setMetadata",
    "compute.instances.setServiceAccount",
    "compute.instances.setTags",
    "compute.disks.create",
    "compute.disks.setLabels",
    "compute.subnetworks.use",
    "compute.subnetworks.useExternalIp",
    "compute.networks.use",
    "compute.zoneOperations.get",
    "compute.zoneOperations.list",
    # Creating a secret grants nothing by itself; what the controller may do to a secret once it
    # exists is in the job-secrets role below, held only on agent-work-job-* secrets.
    "secretmanager.secrets.create",
    "secretmanager.secrets.get",
    "secretmanager.secrets.list",
  ]
  depends_on = [google_project_service.apis]
}

# Deleting a secret and changing who may read it, held on the per-job secrets only: granted
# project-wide, setIamPolicy would let the controller hand itself (or a worker) any secret here.
resource "google_project_iam_custom_role" "controller_job_secrets" {
  role_id     = "agentWorkControllerJobSecrets"
  title       = "agent-work controller: per-job secrets"
  description = "Bound only with a condition on the agent-work-job- secret name prefix."
  permissions = [
    "secretmanager.secrets.delete",
    "secretmanager.secrets.getIamPolicy",
    "secretmanager.secrets.setIamPolicy",
    "secretmanager.versions.add",
  ]
  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "controller" {
  project    = var.project_id
  role       = google_project_iam_custom_role.controller.name
  member     = "serviceAccount:${google_service_account.controller.email}"
  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "controller_job_secrets" {
  project = var.project_id
  role    = google_project_iam_custom_role.controller_job_secrets.name
  member  = "serviceAccount:${google_service_account.controller.email}"
  condition {
    title       = "agent-work per-job secrets only"
    description = "Secrets (and their versions) named agent-work-job-*, which the controller makes per job."
    expression  = "resource.name.startsWith(\"${local.job_secret_prefix}\")"
  }
  depends_on = [google_project_service.apis]
}

# Lets the controller start VMs that run as the worker account, and nothing else about it.
resource "google_service_account_iam_member" "controller_uses_worker" {
  service_account_id = google_service_account.worker.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.controller.email}"
  depends_on         = [google_project_service.apis]
}

# ---- network -------------------------------------------------------------------------------------

# SSH reaches a worker only from the controller (same VPC) and, if enabled, from IAP (priority 900).
# Everything else is denied at priority 1000 (below): the default VPC ships `default-allow-ssh`
# (0.0.0.0/0, priority 65534) for every instance, which would otherwise reach a worker as soon as it
# has an external IP (GCE_EXTERNAL_IP=true). Nothing here opens a port to the internet.
resource "google_compute_firewall" "worker_ssh_from_controller" {
  name                    = "agent-work-worker-ssh-from-controller"
  network                 = var.network
  direction               = "INGRESS"
  priority                = 900
  source_service_accounts = [google_service_account.controller.email]
  target_service_accounts = [google_service_account.worker.email]
  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
  depends_on = [google_project_service.apis]
}

resource "google_compute_firewall" "worker_ssh_from_iap" {
  count                   = var.ssh_from_iap ? 1 : 0
  name                    = "agent-work-worker-ssh-from-iap"
  network                 = var.network
  direction               = "INGRESS"
  priority                = 900
  source_ranges           = [local.iap_range]
  target_service_accounts = [google_service_account.worker.email]
  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
  depends_on = [google_project_service.apis]
}

resource "google_compute_firewall" "worker_ssh_from_outside_controller" {
  count                   = length(var.controller_cidrs) > 0 ? 1 : 0
  name                    = "agent-work-worker-ssh-from-controller-address"
  network                 = var.network
  direction               = "INGRESS"
  priority                = 900
  source_ranges           = var.controller_cidrs
  target_service_accounts = [google_service_account.worker.email]
  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
  depends_on = [google_project_service.apis]
}

# SSH from anywhere else is refused, whatever other rules the network carries (a lower number wins;
# the allow rules above are 900). It targets the worker service account like the rules above,
# rather than the network tag: the tag is set by the controller per VM and is one edit away from
# missing, while a VM only runs as the worker account when it is attached.
resource "google_compute_firewall" "worker_ssh_deny_others" {
  name                    = "agent-work-worker-ssh-deny-others"
  network                 = var.network
  direction               = "INGRESS"
  priority                = 1000
  source_ranges           = ["0.0.0.0/0"]
  target_service_accounts = [google_service_account.worker.email]
  deny {
    protocol = "tcp"
    ports    = ["22"]
  }
  depends_on = [google_project_service.apis]
}

# Workers have no external IP by default; they reach GitHub and the model API through NAT, one per
# region GCE_ZONES spans (a VM uses the NAT of its own region only).
resource "google_compute_router" "nat" {
  for_each   = toset(var.worker_regions)
  name       = "agent-work-nat-router"
  network    = var.network
  region     = each.value
  depends_on = [google_project_service.apis]
}

resource "google_compute_router_nat" "nat" {
  for_each                           = google_compute_router.nat
  name                               = "agent-work-nat"
  router                             = each.value.name
  region                             = each.value.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"
  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
  depends_on = [google_project_service.apis]
}

# ---- the app's own secrets (values are added with gcloud, never through Terraform state) ---------
# Only the model key: the controller reads it at start (AGENT_ENV_FROM_SECRET_MANAGER). The webhook
# secret and the App's private key are read from the controller's environment and files, not from
# Secret Manager, so no empty secret is made for them here.

resource "google_secret_manager_secret" "app" {
  for_each  = toset(["agent-work-model-key"])
  secret_id = each.value
  labels    = { "agent-work-app" = "controller" }
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "controller_reads_app_secrets" {
  for_each   = google_secret_manager_secret.app
  secret_id  = each.value.id
  role       = "roles/secretmanager.secretAccessor"
  member     = "serviceAccount:${google_service_account.controller.email}"
  depends_on = [google_project_service.apis]
}

# ---- cost backstop ---------------------------------------------------------------------------------

data "google_project" "this" {
  depends_on = [google_project_service.apis]
}

resource "google_monitoring_notification_channel" "budget_email" {
  for_each     = toset(var.budget_alert_emails)
  display_name = "agent-work budget: ${each.value}"
  type         = "email"
  labels       = { email_address = each.value }
  depends_on   = [google_project_service.apis]
}

resource "google_billing_budget" "project" {
  count           = var.billing_account == null ? 0 : 1
  billing_account = var.billing_account
  display_name    = "agent-work ${var.project_id}"

  budget_filter {
    projects = ["projects/${data.google_project.this.number}"]
  }

  amount {
    specified_amount {
      currency_code = "USD"
      units         = tostring(var.budget_usd)
    }
  }

  threshold_rules {
    threshold_percent = 0.5
  }
  threshold_rules {
    threshold_percent = 0.9
  }
  threshold_rules {
    threshold_percent = 1.0
  }

  all_updates_rule {
    monitoring_notification_channels = [for c in google_monitoring_notification_channel.budget_email : c.id]
    disable_default_iam_recipients   = false
  }

  depends_on = [google_project_service.apis]
}
