"""RESO Data Dictionary vocabulary used across mlsfeeds."""

STANDARD_STATUS = (
    "Active",
    "Active Under Contract",
    "Canceled",
    "Closed",
    "Coming Soon",
    "Delete",
    "Expired",
    "Hold",
    "Incomplete",
    "Pending",
    "Withdrawn",
)

PROPERTY_TYPE = (
    "Business Opportunity",
    "Commercial Lease",
    "Commercial Sale",
    "Farm",
    "Land",
    "Manufactured In Park",
    "Residential",
    "Residential Income",
    "Residential Lease",
)
