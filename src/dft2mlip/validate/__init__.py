"""validate subpackage."""
