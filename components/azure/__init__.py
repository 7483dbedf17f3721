"""Azure kit: VNet with NAT egress and flow logs, and a private storage account with audit logs."""
