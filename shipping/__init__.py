"""The shipping service: books a carrier for every reserved order.

A second service beside orders/, on the same machinery (outbox/) with its own
database (SHIPPING_DATABASE_URL): its own outbox table, delivery records and
shipments. It hears `order.reserved`, books a parcel with the carrier by a direct
call (carrier.py), stores the shipment and writes `shipment.booked` or
`shipment.rejected` to its own outbox in the same transaction (booking.py); its
own relay (`python -m tasks.relay --service shipping`) publishes them. It imports
outbox/ and config/ only: never orders/, tasks/ or web/ (tests/unit/test_layers.py).
"""
