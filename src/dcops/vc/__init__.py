"""Video conference: SIP accounts of the rooms (from the inventory, secrets in Ansible Vault) and the Kamailio data."""
