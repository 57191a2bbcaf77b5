terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.30, < 7.0"
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
