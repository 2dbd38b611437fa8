"""Mail for the agencies: accounts, their password hashes (Ansible Vault), DKIM keys."""
