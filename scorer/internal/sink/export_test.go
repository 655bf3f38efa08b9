package sink

// AlertPoint is alertPoint, for the external tests.
var AlertPoint = alertPoint
