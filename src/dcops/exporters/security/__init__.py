"""The security exporter: TLS certificates (incl. STARTTLS), SSH posture, open ports vs flows, mail DNS."""
