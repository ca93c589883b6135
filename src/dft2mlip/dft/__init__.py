"""dft subpackage."""
