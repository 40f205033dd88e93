output "service_account_unique_ids" {
  description = "The numeric unique ids of the ingest and the spoke service accounts, comma-separated: serverless.yml param gcpServiceAccountUniqueId (token sub and azp; both forward to the hub)."
  value       = "${google_service_account.ingest.unique_id},${google_service_account.spoke.unique_id}"
}

output "service_account_email" {
  description = "The identity the GCP actions run as (remediateQueued's)."
  value       = google_service_account.spoke.email
}

output "endpoint_service_account_email" {
  description = "The identity the public remediate function runs as: reads its secret, publishes to the requests topic, nothing else."
  value       = google_service_account.endpoint.email
}

output "ingest_service_account_email" {
  description = "The identity sccIngest runs as: no write permission."
  value       = google_service_account.ingest.email
}

output "findings_topic" {
  description = "Pub/Sub topic the SCC notification config publishes to."
  value       = google_pubsub_topic.findings.id
}

output "ingest_subscription" {
  description = "Push subscription delivering the findings to sccIngest (dead-letters after max_delivery_attempts)."
  value       = google_pubsub_subscription.ingest.id
}

output "dead_letter_subscription" {
  description = "Findings sccIngest could not take in max_delivery_attempts, kept 7 days for inspection and replay."
  value       = google_pubsub_subscription.dead_letters.id
}

output "dead_letter_alert_policy" {
  description = "Alert policy opening an incident while the dead-letter subscription holds messages."
  value       = google_monitoring_alert_policy.dead_letters.name
}

output "remediate_url" {
  description = "HTTPS endpoint of the remediation function: serverless.yml param gcpRemediateUrl."
  value       = var.remediate_enabled ? google_cloudfunctions2_function.remediate[0].service_config[0].uri : ""
}

output "remediate_dead_letter_subscription" {
  description = "Remediation requests remediateQueued did not run (attribute reason when it never could), kept 7 days."
  value       = google_pubsub_subscription.remediate_dead_letters.id
}

output "remediate_dead_letter_alert_policy" {
  description = "Alert policy opening an incident while the remediation dead-letter subscription holds messages."
  value       = google_monitoring_alert_policy.remediate_dead_letters.name
}

output "remediation_role" {
  description = "The custom role holding exactly the GCP actions' declared permissions."
  value       = google_project_iam_custom_role.remediation.id
}
