"""RESO Data Dictionary vocabulary used across mlsfeeds."""


def city_key(city: str | None) -> str | None:
    """A city as searches match it: whitespace collapsed, case folded (Unicode-aware)."""
    if city is None:
        return None
    key = " ".join(city.split()).casefold()
    return key or None


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

# The RESO fields a listing row stores: RESO name -> (column, type). Types drive coercion when
# a feed is mapped: text | int | decimal | float | timestamp.
LISTING_FIELDS: dict[str, tuple[str, str]] = {
    "ListingKey": ("listing_key", "text"),
    "ListingId": ("listing_id", "text"),
    "StandardStatus": ("standard_status", "text"),
    "PropertyType": ("property_type", "text"),
    "PropertySubType": ("property_sub_type", "text"),
    "ListPrice": ("list_price", "decimal"),
    "BedroomsTotal": ("bedrooms_total", "int"),
    "BathroomsTotalInteger": ("bathrooms_total_integer", "int"),
    "LivingArea": ("living_area", "decimal"),
    "LotSizeAcres": ("lot_size_acres", "decimal"),
    "YearBuilt": ("year_built", "int"),
    "UnparsedAddress": ("unparsed_address", "text"),
    "StreetNumber": ("street_number", "text"),
    "StreetName": ("street_name", "text"),
    "UnitNumber": ("unit_number", "text"),
    "City": ("city", "text"),
    "StateOrProvince": ("state_or_province", "text"),
    "PostalCode": ("postal_code", "text"),
    "CountyOrParish": ("county_or_parish", "text"),
    "Latitude": ("latitude", "float"),
    "Longitude": ("longitude", "float"),
    "PublicRemarks": ("public_remarks", "text"),
    "ListAgentFullName": ("list_agent_full_name", "text"),
    "ListOfficeName": ("list_office_name", "text"),
    "PhotosCount": ("photos_count", "int"),
    "PhotosChangeTimestamp": ("photos_change_timestamp", "timestamp"),
    "ModificationTimestamp": ("modification_timestamp", "timestamp"),
}
