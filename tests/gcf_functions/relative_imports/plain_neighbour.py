VALUE = "imported plainly"
