output "worker_service_account" {
  description = "GCE_WORKER_SERVICE_ACCOUNT: attached to every job VM; holds no role."
  value       = google_service_account.worker.email
}

output "controller_service_account" {
  description = "The account the controller runs as (attach it to the controller's VM or Cloud Run service)."
  value       = google_service_account.controller.email
}

output "worker_image" {
  description = "GCE_IMAGE: the image family the workers boot from; bake it with ansible/bake-image.sh."
  value       = "projects/${var.project_id}/global/images/family/${var.image_family}"
}

output "app_secrets" {
  description = "Secret Manager secrets to fill with gcloud secrets versions add (the model key, read by the controller through AGENT_ENV_FROM_SECRET_MANAGER)."
  value       = { for k, s in google_secret_manager_secret.app : k => s.id }
}

output "env" {
  description = "Lines for the controller's .env."
  value       = <<-EOT
    GCE_PROJECT=${var.project_id}
    GCE_WORKER_SERVICE_ACCOUNT=${google_service_account.worker.email}
    GCE_IMAGE=projects/${var.project_id}/global/images/family/${var.image_family}
    GCE_NETWORK=${var.network}
    GCE_NETWORK_TAGS=${var.worker_network_tag}
    GCE_EXTERNAL_IP=${length(var.controller_cidrs) > 0 ? "true" : "false"}
    AGENT_ENV_FROM_SECRET_MANAGER=ANTHROPIC_API_KEY=${google_secret_manager_secret.app["agent-work-model-key"].id}
  EOT
}

output "controller_address" {
  description = "The controller VM's external address (controller_vm): point controller_domain's A record here."
  value       = var.controller_vm ? google_compute_address.controller[0].address : null
}

output "controller_secrets" {
  description = "Secrets to fill before the controller VM boots (controller_vm): its .env, and the workers' SSH private key."
  value       = [for s in google_secret_manager_secret.controller : s.secret_id]
}
