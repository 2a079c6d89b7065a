"""Test helpers shipped with the library: public hypothesis strategies (see `strategies`)."""
