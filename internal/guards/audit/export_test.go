package audit

// CompileAlerts compiles alert rules (tests).
var CompileAlerts = compileAlerts
