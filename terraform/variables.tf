variable "project_id" {
  description = "Project the workers run in (GCE_PROJECT): its id, not its name or number."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id is a project id such as my-project-123: 6 to 30 lowercase letters, digits and dashes, starting with a letter (not the project's display name or number)."
  }
}

variable "region" {
  description = "Default region for the provider (regional calls); the NAT regions are worker_regions."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region is a region such as us-central1 (not a zone such as us-central1-a)."
  }
}

variable "worker_regions" {
  description = "Every region GCE_ZONES spans (us-central1-a -> us-central1): each gets a Cloud NAT, so a worker without an external IP reaches GitHub and the model API in whichever zone it starts."
  type        = list(string)
  default     = ["us-central1"]

  validation {
    condition     = length(var.worker_regions) > 0 && alltrue([for r in var.worker_regions : can(regex("^[a-z]+-[a-z]+[0-9]+$", r))])
    error_message = "worker_regions lists regions such as [\"us-central1\", \"europe-west1\"] (not zones), at least one."
  }
}

variable "network" {
  description = "VPC network the workers use (GCE_NETWORK)."
  type        = string
  default     = "default"
}

variable "worker_network_tag" {
  description = "Network tag on every worker VM (GCE_NETWORK_TAGS), for rules of your own; the rules here target the worker service account, which a VM cannot claim without serviceAccountUser on it."
  type        = string
  default     = "agent-work-worker"
}

variable "ssh_from_iap" {
  description = "Admit SSH to workers from Identity-Aware Proxy's range (35.235.240.0/20), for a person debugging with gcloud compute ssh --tunnel-through-iap."
  type        = bool
  default     = true
}

variable "controller_cidrs" {
  description = "Addresses of a controller outside the VPC that reaches workers on external IPs (GCE_EXTERNAL_IP=true), e.g. [\"203.0.113.7/32\"]. Never 0.0.0.0/0."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.controller_cidrs : !contains(["0.0.0.0/0", "::/0"], c) && can(cidrhost(c, 0))])
    error_message = "controller_cidrs must be specific address ranges such as 203.0.113.7/32; opening SSH to the whole internet (0.0.0.0/0) is refused."
  }
}

variable "image_family" {
  description = "Image family the workers boot from, baked by ansible/bake-image.sh (GCE_IMAGE = projects/<project>/global/images/family/<family>)."
  type        = string
  default     = "agent-work-worker"
}

variable "billing_account" {
  description = "Billing account id (XXXXXX-XXXXXX-XXXXXX) for the budget alert; null to skip the budget."
  type        = string
  default     = null

  validation {
    condition     = var.billing_account == null || can(regex("^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$", var.billing_account))
    error_message = "billing_account is an id such as 012345-6789AB-CDEF01 (gcloud billing accounts list), or null to skip the budget."
  }
}

variable "budget_usd" {
  description = "Monthly budget for the project in USD; alerts at 50%, 90% and 100%. A lagging backstop: agent-work enforces its own caps before a VM starts."
  type        = number
  default     = 5

  validation {
    # The budget API takes whole units here (units is a string of an integer).
    condition     = var.budget_usd >= 1 && floor(var.budget_usd) == var.budget_usd
    error_message = "budget_usd is a whole number of dollars, at least 1 (e.g. 5)."
  }
}

variable "budget_alert_emails" {
  description = "Email addresses told when the budget thresholds are crossed (as Cloud Monitoring email channels)."
  type        = list(string)
  default     = []
}

variable "controller_vm" {
  description = "Also run the controller itself: a small Container-Optimized OS VM as the controller account, HTTPS through Caddy for controller_domain, its .env and the workers' SSH key from Secret Manager (controller.tf)."
  type        = bool
  default     = false
}

variable "controller_image" {
  description = "The controller's container image (the repository's Dockerfile), pinned by digest: <registry>/<name>@sha256:<64 hex>. Required with controller_vm."
  type        = string
  default     = ""
  validation {
    condition     = var.controller_image == "" || can(regex("^[a-z0-9./_:-]+@sha256:[0-9a-f]{64}$", var.controller_image))
    error_message = "controller_image is an image pinned by digest, such as ghcr.io/acme/agent-work@sha256:<64 hex digits>."
  }
}

variable "caddy_image" {
  description = "The Caddy image in front of the controller (HTTPS); pin it by digest as well (docker buildx imagetools inspect caddy:2)."
  type        = string
  default     = "caddy:2"
}

variable "controller_domain" {
  description = "DNS name GitHub and people reach the controller at; point its A record at the controller_address output before the first boot, so Let's Encrypt can issue the certificate. Required with controller_vm."
  type        = string
  default     = ""
  validation {
    condition     = var.controller_domain == "" || can(regex("^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\.)+[a-z]{2,}$", var.controller_domain))
    error_message = "controller_domain is a DNS name such as agent-work.example.com."
  }
}

variable "controller_zone" {
  description = "Zone of the controller VM (its static address is in the zone's region)."
  type        = string
  default     = "us-central1-a"
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", var.controller_zone))
    error_message = "controller_zone is a zone such as us-central1-a."
  }
}

variable "controller_machine_type" {
  description = "Machine type of the controller VM; e2-small (2 GB) holds the controller, Caddy and COS with room to spare."
  type        = string
  default     = "e2-small"
}
