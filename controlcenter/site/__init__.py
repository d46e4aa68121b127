"""Site configuration: the site file's models, and YAML read with the line of every value."""
