"""Google Cloud kit: the platform in GCP's own terms (VPC, Cloud NAT, GCS, Cloud KMS)."""
