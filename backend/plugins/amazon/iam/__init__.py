"""Least-privilege IAM for Kiln's AWS builds: the policy a template needs
(:mod:`backend.iam.table`, :mod:`backend.iam.policy`) and the preflight that checks the
credentials hold it before anything is created (:mod:`backend.iam.preflight`).

Only the preflight imports boto3, and only when it runs.
"""
