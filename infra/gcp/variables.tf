# closeloop GCP spoke: inputs. Nothing here is a secret: the remediation shared secret is added to Secret
# Manager after the first apply (infra/README.md), never passed to Terraform.

variable "project_id" {
  description = "Project that hosts the spoke (function, topic, service account) and whose resources the actions change."
  type        = string
}

variable "organization_id" {
  description = "Organization whose Security Command Center findings are exported (numeric id)."
  type        = string
}

variable "region" {
  description = "Region of the functions and the event trigger."
  type        = string
  default     = "us-central1"
}

variable "prefix" {
  description = "Name prefix of every resource."
  type        = string
  default     = "closeloop"
}

variable "node_runtime" {
  description = "Cloud Functions runtime (the bundles target Node 20; 22 also runs them)."
  type        = string
  default     = "nodejs20"
  validation {
    condition     = contains(["nodejs20", "nodejs22"], var.node_runtime)
    error_message = "node_runtime must be nodejs20 or nodejs22."
  }
}

variable "ingest_zip" {
  description = "Zip of the ingest function (npm run build → dist/functions/gcp/scc-ingest.zip)."
  type        = string
  default     = "../../dist/functions/gcp/scc-ingest.zip"
}

variable "remediate_zip" {
  description = "Zip of the remediation function (dist/functions/gcp/remediate.zip)."
  type        = string
  default     = "../../dist/functions/gcp/remediate.zip"
}

variable "hub_bus_arn" {
  description = "Hub bus ARN (serverless.yml output HubBusArn)."
  type        = string
}

variable "hub_region" {
  description = "Hub region (bus and STS)."
  type        = string
  default     = "us-east-1"
}

variable "forwarder_role_arn" {
  description = "Hub role assumed with the service account's ID token (serverless.yml output GcpSpokeForwarderRoleArn)."
  type        = string
}

variable "federation_audience" {
  description = "Audience of the ID token; equals serverless.yml param gcpAudience (checked as accounts.google.com:oaud)."
  type        = string
  default     = "closeloop-hub"
}

variable "scc_filter" {
  description = "SCC streaming filter: active findings and their resolutions (INACTIVE) so the hub can verify."
  type        = string
  default     = "state = \"ACTIVE\" OR state = \"INACTIVE\""
}

variable "remediate_enabled" {
  description = "Deploy the remediation function. Needs a version of the remediate secret first (infra/README.md)."
  type        = bool
  default     = false
}

variable "apply_actions" {
  description = "Let the spoke apply changes (false: it plans only, whatever the hub asks)."
  type        = bool
  default     = false
}

variable "tag_lookup" {
  description = "Read the labels of resources (project and bucket) for SCC findings and send them to the hub with the finding."
  type        = bool
  default     = false
}

variable "dead_letter_notification_channels" {
  description = "Cloud Monitoring notification channels (projects/<project>/notificationChannels/<id>) told when SCC findings are dead-lettered; empty: the alert policy still opens incidents, shown in the console only."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.dead_letter_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "Each dead_letter_notification_channels entry must be a channel id: projects/<project>/notificationChannels/<id>."
  }
}
