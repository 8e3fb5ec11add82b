"""HTTP adapters: one blueprint module per endpoint family, each thin over the domain modules."""
