"""HCL2 templates: lexer, parser (syntax.py), expression evaluator (expr.py), functions,
the loader (variables, data sources, builds), the formatter and the JSON-to-HCL2 upgrade."""
