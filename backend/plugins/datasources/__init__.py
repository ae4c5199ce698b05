"""HCL2 data sources: values looked up when a template is loaded for a build."""
