terraform {
  required_version = ">= 1.5"
  required_providers {
    # 6.x and 7.x both carry every resource and argument used here; 8 may not. No lock file is
    # committed: see "Provider lock" in README.md.
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 8.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
  # Budgets are billed-account resources; the API wants a quota project to bill the call to.
  user_project_override = true
  billing_project       = var.project_id
}
