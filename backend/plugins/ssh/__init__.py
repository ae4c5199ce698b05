"""SSH: the ssh communicator (settings, connecting, channels, scp and sftp transfers)."""
