# Google Cloud side of agent-work's gce backend. See README.md in this folder.
#
# Two service accounts:
# - the worker account, attached to every job VM, holds NO role anywhere: the agent on the VM is
#   treated as hostile and anything it can reach through the metadata server must be worthless.
#   (Per-job secrets, when used, are bound to it by the controller on that one secret at run time.)
# - the controller account holds one custom role with only the calls the backend makes, and may
#   attach the worker account to VMs (serviceAccountUser on that account alone, not the project).

locals {
  apis = ["compute.googleapis.com", "secretmanager.googleapis.com", "iap.googleapis.com", "billingbudgets.googleapis.com"]
  # The IAP TCP forwarding range (documented by Google; constant).
  iap_range = "35.235.240.0/20"
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
}

resource "google_service_account" "controller" {
  account_id   = "agent-work-controller"
  display_name = "agent-work controller"
  description  = "Creates and deletes job VMs and per-job secrets; reads the app's own secrets."
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
    "secretmanager.secrets.create",
    "secretmanager.secrets.delete",
    "secretmanager.secrets.get",
    "secretmanager.secrets.list",
    "secretmanager.secrets.getIamPolicy",
    "secretmanager.secrets.setIamPolicy",
    "secretmanager.versions.add",
  ]
}

resource "google_project_iam_member" "controller" {
  project = var.project_id
  role    = google_project_iam_custom_role.controller.name
  member  = "serviceAccount:${google_service_account.controller.email}"
}

# Lets the controller start VMs that run as the worker account, and nothing else about it.
resource "google_service_account_iam_member" "controller_uses_worker" {
  service_account_id = google_service_account.worker.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.controller.email}"
}

# ---- network -------------------------------------------------------------------------------------

# SSH reaches a worker only from the controller (same VPC) and, if enabled, from IAP. GCP denies
# every other ingress by default; nothing here opens a port to the internet.
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
}

# Workers have no external IP by default; they reach GitHub and the model API through NAT.
resource "google_compute_router" "nat" {
  name    = "agent-work-nat-router"
  network = var.network
  region  = var.region
}

resource "google_compute_router_nat" "nat" {
  name                               = "agent-work-nat"
  router                             = google_compute_router.nat.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"
  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# ---- the app's own secrets (values are added with gcloud, never through Terraform state) ---------

resource "google_secret_manager_secret" "app" {
  for_each  = toset(["agent-work-webhook-secret", "agent-work-private-key", "agent-work-model-key"])
  secret_id = each.value
  labels    = { "agent-work-app" = "controller" }
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "controller_reads_app_secrets" {
  for_each  = google_secret_manager_secret.app
  secret_id = each.value.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.controller.email}"
}

# ---- cost backstop ---------------------------------------------------------------------------------

data "google_project" "this" {}

resource "google_monitoring_notification_channel" "budget_email" {
  for_each     = toset(var.budget_alert_emails)
  display_name = "agent-work budget: ${each.value}"
  type         = "email"
  labels       = { email_address = each.value }
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
