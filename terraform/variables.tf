variable "project_id" {
  description = "Project the workers run in (GCE_PROJECT)."
  type        = string
}

variable "region" {
  description = "Region of the Cloud NAT that lets workers without an external IP reach GitHub and the model API; use the region of GCE_ZONES."
  type        = string
  default     = "us-central1"
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
}

variable "budget_usd" {
  description = "Monthly budget for the project in USD; alerts at 50%, 90% and 100%. A lagging backstop: agent-work enforces its own caps before a VM starts."
  type        = number
  default     = 5
}

variable "budget_alert_emails" {
  description = "Email addresses told when the budget thresholds are crossed (as Cloud Monitoring email channels)."
  type        = list(string)
  default     = []
}
