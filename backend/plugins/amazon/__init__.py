"""Amazon EC2: the shared AWS access and helpers (common.py), and the amazon-ebs and amazon-instance builders."""
