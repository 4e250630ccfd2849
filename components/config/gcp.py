"""Google Cloud names the config is checked against offline: regions and machine families.

Both lists were read on 2026-12-04. Regions: the region tables of Google Cloud's location pages
(docs.cloud.google.com/workload-manager/docs/evaluate/locations, cloud.google.com/memorystore/docs/
memcached/regions, docs.cloud.google.com/unified-maintenance/docs/locations; `gcloud compute regions
list` prints the live list). Machine families: the series of the Compute Engine API's
Commitment.Type enum (docs.cloud.google.com/dotnet/docs/reference/Google.Cloud.Compute.V1/latest/
Google.Cloud.Compute.V1.Commitment.Types.Type) and the machine-resource page
(cloud.google.com/compute/docs/machine-resource), plus the legacy shared-core f1/g1.

When Google opens a region or a machine series, add its name here (one line; the schema, the docs
table and the messages follow); `gcloud compute machine-types list --filter="zone:<zone>"` shows
which types a zone offers, which no offline check can know.
"""

from __future__ import annotations

READ_ON = "2026-12-04"

REGIONS = frozenset({
    # Americas
    "northamerica-northeast1", "northamerica-northeast2", "northamerica-south1",
    "southamerica-east1", "southamerica-west1",
    "us-central1", "us-east1", "us-east4", "us-east5", "us-south1", "us-west1", "us-west2", "us-west3", "us-west4",
    # Europe
    "europe-central2", "europe-north1", "europe-north2", "europe-southwest1", "europe-west1", "europe-west2",
    "europe-west3", "europe-west4", "europe-west6", "europe-west8", "europe-west9", "europe-west10",
    "europe-west12",
    # Asia Pacific
    "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2", "asia-northeast3", "asia-south1",
    "asia-south2", "asia-southeast1", "asia-southeast2", "australia-southeast1", "australia-southeast2",
    # Middle East and Africa
    "me-central1", "me-central2", "me-west1", "africa-south1",
})

MACHINE_FAMILIES = frozenset({
    # general purpose
    "e2", "n1", "n2", "n2d", "n4", "n4a", "n4d", "c3", "c3d", "c4", "c4a", "c4d", "t2a", "t2d", "f1", "g1",
    # compute optimized
    "c2", "c2d", "h3", "h4d",
    # memory optimized
    "m1", "m2", "m3", "m4", "x4",
    # storage optimized
    "z3",
    # accelerator optimized
    "a2", "a3", "a4", "a4x", "g2", "g4",
})

# The second part of a machine type name (`<family>-<type>[-<vCPUs>]`), from the same page: predefined
# types, the shared-core sizes, custom machine types and the local-SSD variants.
MACHINE_TYPE_KINDS = frozenset({
    "standard", "highmem", "highcpu", "megamem", "ultramem", "hypermem", "highgpu", "megagpu", "ultragpu",
    "edgegpu", "micro", "small", "medium", "custom", "standardlssd", "highlssd", "lssd",
})
