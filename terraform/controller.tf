# ---- the controller itself, as an option (controller_vm = true) -------------------------------------
#
# One small VM running the controller's container on Container-Optimized OS, as the controller
# account (so the worker SSH rule admits it), with Caddy in front for HTTPS (a Let's Encrypt
# certificate for controller_domain): GitHub delivers webhooks to
# https://<controller_domain>/api/github/webhooks. Its settings (.env) and the workers' SSH key come
# from Secret Manager at every boot, into memory (/run is a tmpfs): nothing secret is in the
# instance metadata, the image or Terraform's state. The store is SQLite on the boot disk.

locals {
  controller_secrets = var.controller_vm ? toset(["agent-work-controller-env", "agent-work-controller-ssh-key"]) : toset([])
}

resource "google_secret_manager_secret" "controller" {
  for_each  = local.controller_secrets
  secret_id = each.value
  labels    = { "agent-work-app" = "controller" }
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "controller_reads_own_secrets" {
  for_each   = google_secret_manager_secret.controller
  secret_id  = each.value.id
  role       = "roles/secretmanager.secretAccessor"
  member     = "serviceAccount:${google_service_account.controller.email}"
  depends_on = [google_project_service.apis]
}

resource "google_compute_address" "controller" {
  count      = var.controller_vm ? 1 : 0
  name       = "agent-work-controller"
  region     = join("-", slice(split("-", var.controller_zone), 0, 2))
  depends_on = [google_project_service.apis]
}

resource "google_compute_instance" "controller" {
  count                     = var.controller_vm ? 1 : 0
  name                      = "agent-work-controller"
  zone                      = var.controller_zone
  machine_type              = var.controller_machine_type
  tags                      = ["agent-work-controller"]
  allow_stopping_for_update = true

  boot_disk {
    initialize_params {
      image = "cos-cloud/cos-stable"
      size  = 20
      type  = "pd-balanced"
    }
  }

  network_interface {
    network = var.network
    access_config {
      nat_ip = google_compute_address.controller[0].address
    }
  }

  service_account {
    email  = google_service_account.controller.email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    # Names and images only; the cloud-init reads the secrets' values from Secret Manager.
    user-data = templatefile("${path.module}/controller-cloud-init.yaml", {
      controller_image = var.controller_image
      caddy_image      = var.caddy_image
      domain           = var.controller_domain
      env_secret       = "projects/${var.project_id}/secrets/agent-work-controller-env"
      ssh_key_secret   = "projects/${var.project_id}/secrets/agent-work-controller-ssh-key"
    })
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = "TRUE"
  }

  lifecycle {
    precondition {
      condition     = var.controller_image != "" && var.controller_domain != ""
      error_message = "controller_vm needs controller_image (pinned by digest) and controller_domain."
    }
  }

  depends_on = [google_project_service.apis, google_secret_manager_secret_iam_member.controller_reads_own_secrets]
}

# HTTPS (and HTTP for the certificate's challenge and the redirect) to the controller alone: GitHub's
# webhooks come from its own changing ranges, and people open the job pages from anywhere.
resource "google_compute_firewall" "controller_https" {
  count         = var.controller_vm ? 1 : 0
  name          = "agent-work-controller-https"
  network       = var.network
  direction     = "INGRESS"
  priority      = 900
  target_tags   = ["agent-work-controller"]
  source_ranges = ["0.0.0.0/0"]
  allow {
    protocol = "tcp"
    ports    = ["80", "443"]
  }
  depends_on = [google_project_service.apis]
}
