// closeloop Azure spoke resources (resource-group scope; deployed by main.bicep): a Linux Flex Consumption
// function app with a system-assigned managed identity, its storage (identity-based, no shared key),
// Application Insights, a Key Vault for the shared secrets, an Event Grid topic subscribed to the
// Event Grid trigger (dead letters kept in a blob container, a metric alert when any arrive), Defender for Cloud workflow automation →
// Logic App → the HTTP trigger, and the Storage queue between the remediate endpoint and its worker (a
// poison queue, a log alert when anything lands there; a blob container, with a lifecycle rule, for requests
// too large for a queue message).
targetScope = 'resourceGroup'

param prefix string
param location string
param hubBusArn string
param hubRegion string
param forwarderRoleArn string
param federationAudience string
param nodeVersion string
param applyActions bool
param tagLookup bool = false

@description('Action group (resource id) the dead-letter and remediation poison alerts notify; empty: they have no action.')
param deadLetterActionGroupId string = ''

@description('Create the Event Grid subscription to the defenderEventGrid function. Azure validates that the function exists, so deploy once, publish the code, then deploy again with true.')
param subscribeEventGrid bool = false

var suffix = uniqueString(resourceGroup().id, prefix)
var functionAppName = '${prefix}-spoke-${suffix}'
// Built-in role ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
// functions/azure/remediate.ts REMEDIATE_QUEUE and its poison queue (the host's `<queue>-poison`).
var remediateQueueName = 'remediate-requests'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take('${prefix}${suffix}', 24)
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    // The app reaches its storage with its managed identity: no account key anywhere.
    allowSharedKeyAccess: false
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deployments 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'deployments'
  properties: {
    publicAccess: 'None'
  }
}

// Defender events Event Grid could not deliver to defenderEventGrid (its retry policy spent), one blob per
// event with the reason (deadLetterReason, deliveryAttempts, lastDeliveryOutcome): read them to see what
// was not ingested, and publish them to the topic again to replay.
resource deadLetters 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'defender-dead-letters'
  properties: {
    publicAccess: 'None'
  }
}

// ---- remediation hand-over: the hub's API destination waits 5 seconds for an answer and an apply takes
// longer, so `remediate` only checks a request and queues it here (answering 202); `remediateQueued` runs
// it. A run that throws is retried (host.json maxDequeueCount) and then moved to the poison queue, as is a
// message that is no request for this spoke (with its reason).
resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource remediateQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: remediateQueueName
}

// What remediateQueued could not run: read the messages (az storage message peek --auth-mode login), fix
// the cause, and put them back on remediate-requests (or let the hub's sweep hand the case over again).
resource remediatePoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${remediateQueueName}-poison'
}

// Requests too large for a queue message (64 KiB, base64-encoded by the host): `remediate` stores each as a
// blob named after its requestId and queues a pointer with its sha256 (functions/azure/remediate.ts
// REMEDIATE_LARGE_CONTAINER); `remediateQueued` reads it, checks the hash and runs it. The app's identity
// reaches it through blobOwner (below): the Functions host needs Blob Data Owner on the whole account for
// AzureWebJobsStorage, and the endpoint and the worker are one app with one identity, so a role scoped to
// this container would grant nothing more nor less. The worker follows pointers into this container only.
resource remediateLarge 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: '${remediateQueueName}-large'
  properties: {
    publicAccess: 'None'
  }
}

// The large requests expire 15 days after their last write, and the worker does not delete them: the queue
// may deliver a pointer again after its run (it then runs as a noop), and an operator may put a poisoned
// pointer back; a message lives 7 days on each of the two queues. An account has one lifecycle policy
// (named default): a rule for another container goes in here too.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          enabled: true
          name: 'expire-large-remediation-requests'
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${remediateLarge.name}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: 14
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${prefix}-logs-${suffix}'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${prefix}-insights-${suffix}'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
  }
}

// Holds `spoke-secret` (Logic App → defenderHttp) and `remediate-secret` (hub API destination →
// remediate); their values are set after deployment, never in this template.
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: take('${prefix}kv${suffix}', 24)
  location: location
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    enablePurgeProtection: true
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${prefix}-plan-${suffix}'
  location: location
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deployments.name}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: 40
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'node'
        version: nodeVersion
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: [
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storage.name
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: insights.properties.ConnectionString
        }
        // The hub (shared/adapters/wiring/azure.ts AzureSpokeEnvSchema).
        {
          name: 'CLOSELOOP_HUB_BUS_ARN'
          value: hubBusArn
        }
        {
          name: 'CLOSELOOP_HUB_REGION'
          value: hubRegion
        }
        {
          name: 'CLOSELOOP_FORWARDER_ROLE_ARN'
          value: forwarderRoleArn
        }
        {
          name: 'CLOSELOOP_FEDERATION_AUDIENCE'
          value: federationAudience
        }
        // Key Vault references: resolved by the platform with the app's identity; no value in the template.
        {
          name: 'CLOSELOOP_SPOKE_SECRET'
          value: '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=spoke-secret)'
        }
        {
          name: 'CLOSELOOP_REMEDIATE_SECRET'
          value: '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=remediate-secret)'
        }
        // ARM's string() of a bool is 'True'/'False'; the function reads 'true' (anything else: off).
        {
          name: 'CLOSELOOP_APPLY'
          value: toLower(string(applyActions))
        }
        {
          name: 'CLOSELOOP_TAG_LOOKUP'
          value: toLower(string(tagLookup))
        }
      ]
    }
  }
}

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// The app's identity on the two queues only, not the account: the output binding adds (and creates if
// missing), the trigger reads, deletes and releases a failed message back (Update Message), the host
// moves poison. Storage Queue Data Contributor is the built-in role holding all of that; the narrower
// Message Sender/Processor pair cannot update a message or create the queue the bindings ask for.
resource remediateQueueUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(remediateQueue.id, functionApp.id, storageQueueDataContributor)
  scope: remediateQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource remediatePoisonQueueUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(remediatePoisonQueue.id, functionApp.id, storageQueueDataContributor)
  scope: remediatePoisonQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// A remediation the hub handed over and this spoke did not run sits in the poison queue until its messages
// expire (7 days): alert when one lands there. Storage metrics count messages per account, not per queue,
// so this reads the app's own log lines instead: the host's "Moving message to queue
// 'remediate-requests-poison'" and remediateQueued's "remediation message moved to
// remediate-requests-poison" (with the reason). Like the dead-letter alert, it fires for the window in
// which they arrived; deadLetterActionGroupId sends it on.
resource remediatePoisonAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${prefix}-remediate-poison-${suffix}'
  location: location
  kind: 'LogAlert'
  properties: {
    displayName: '${prefix}: remediation requests not run (${remediatePoisonQueue.name})'
    description: 'The spoke could not run remediation requests the hub handed over; they are in the ${remediatePoisonQueue.name} queue of ${storage.name} (the reason in the function logs): read them, fix the cause, put them back on ${remediateQueue.name} (infra/README.md).'
    severity: 2
    enabled: true
    scopes: [
      insights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: 'traces | where message contains "${remediatePoisonQueue.name}"'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: empty(deadLetterActionGroupId) ? [] : [
        deadLetterActionGroupId
      ]
    }
  }
}

resource appSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, functionApp.id, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---- Event Grid: whatever publishes Defender documents to this topic reaches defenderEventGrid.
resource defenderTopic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: '${prefix}-defender-${suffix}'
  location: location
  // Writes the subscription's dead letters: the storage account takes no shared key.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'EventGridSchema'
    publicNetworkAccess: 'Enabled'
    disableLocalAuth: true
  }
}

resource defenderSubscription 'Microsoft.EventGrid/topics/eventSubscriptions@2022-06-15' = if (subscribeEventGrid) {
  parent: defenderTopic
  name: 'closeloop-spoke'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionApp.id}/functions/defenderEventGrid'
        maxEventsPerBatch: 1
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    // Without a dead-letter destination Event Grid drops an event once the retry policy is spent.
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetters.name
        }
      }
    }
  }
  dependsOn: [
    deadLetterWriter
  ]
}

// The topic's identity may write blobs in the dead-letter container and nowhere else.
resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetters.id, defenderTopic.id, storageBlobDataContributor)
  scope: deadLetters
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: defenderTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Nobody reads the dead-letter container unprompted: like the hub's DLQ alarms (serverless.yml
// DeadLetterAlarmTopic), alert when Event Grid dead-letters anything. DeadLetteredCount counts the events
// dead-lettered in the window (not what the container still holds), so the alert fires for the 5 minutes
// in which they arrived and resolves itself; the blobs stay. It exists without an action group too (fired
// alerts show in the portal); deadLetterActionGroupId sends them on.
resource deadLetterAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${prefix}-defender-dead-letters-${suffix}'
  location: 'global'
  properties: {
    description: 'Event Grid dead-lettered Defender events (not ingested) into the ${deadLetters.name} container of ${storage.name}: read the blobs, fix the cause, publish them to the topic again (infra/README.md).'
    severity: 2
    enabled: true
    scopes: [
      defenderTopic.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'DeadLettered'
          metricNamespace: 'Microsoft.EventGrid/topics'
          metricName: 'DeadLetteredCount'
          timeAggregation: 'Total'
          operator: 'GreaterThan'
          threshold: 0
        }
      ]
    }
    autoMitigate: true
    actions: empty(deadLetterActionGroupId) ? [] : [
      {
        actionGroupId: deadLetterActionGroupId
      }
    ]
  }
}

// ---- Defender for Cloud workflow automation → Logic App → defenderHttp (function key + shared secret).
resource forwarder 'Microsoft.Logic/workflows@2019-05-01' = {
  name: '${prefix}-defender-forwarder-${suffix}'
  location: location
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    state: 'Enabled'
    definition: {
      '$schema': 'https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#'
      contentVersion: '1.0.0.0'
      triggers: {
        manual: {
          type: 'Request'
          kind: 'Http'
        }
      }
      actions: {
        // The shared secret, read with the Logic App's own identity; secure outputs keep it out of run history.
        Read_spoke_secret: {
          type: 'Http'
          inputs: {
            method: 'GET'
            uri: '${vault.properties.vaultUri}secrets/spoke-secret?api-version=7.4'
            authentication: {
              type: 'ManagedServiceIdentity'
              audience: 'https://vault.azure.net'
            }
          }
          runtimeConfiguration: {
            secureData: {
              properties: [
                'outputs'
              ]
            }
          }
        }
        Forward_to_spoke: {
          type: 'Function'
          runAfter: {
            Read_spoke_secret: [
              'Succeeded'
            ]
          }
          inputs: {
            function: {
              id: '${functionApp.id}/functions/defenderHttp'
            }
            method: 'POST'
            headers: {
              'x-closeloop-secret': '@{body(\'Read_spoke_secret\')?[\'value\']}'
            }
            body: '@triggerBody()'
          }
          runtimeConfiguration: {
            secureData: {
              properties: [
                'inputs'
              ]
            }
          }
        }
      }
    }
  }
}

resource forwarderSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, forwarder.id, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: forwarder.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Alerts and unhealthy recommendations of the whole subscription, as they are created or change.
resource automation 'Microsoft.Security/automations@2023-12-01-preview' = {
  name: '${prefix}-defender-export'
  location: location
  properties: {
    isEnabled: true
    description: 'closeloop: Defender for Cloud alerts and unhealthy recommendations to the closeloop spoke'
    scopes: [
      {
        description: 'the subscription'
        scopePath: subscription().id
      }
    ]
    sources: [
      {
        eventSource: 'Alerts'
      }
      {
        eventSource: 'Assessments'
        ruleSets: [
          {
            rules: [
              {
                propertyJPath: 'properties.status.code'
                propertyType: 'String'
                expectedValue: 'Unhealthy'
                operator: 'Equals'
              }
            ]
          }
        ]
      }
    ]
    actions: [
      {
        actionType: 'LogicApp'
        logicAppResourceId: forwarder.id
        uri: listCallbackUrl('${forwarder.id}/triggers/manual', '2019-05-01').value
      }
    ]
  }
}

output principalId string = functionApp.identity.principalId
output functionAppName string = functionApp.name
output remediateUrl string = 'https://${functionApp.properties.defaultHostName}/api/remediate'
output keyVaultName string = vault.name
output defenderTopicEndpoint string = defenderTopic.properties.endpoint
output deadLetterContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deadLetters.name}'
output deadLetterAlertId string = deadLetterAlert.id
output remediatePoisonQueueUrl string = '${storage.properties.primaryEndpoints.queue}${remediatePoisonQueue.name}'
