"""The domain: clinical arithmetic, units and the plain records every stage passes on."""
