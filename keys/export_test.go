package keys

// KMSContract is the behaviour every KMS must have, for the external
// tests of the Vault KMS.
var KMSContract = kmsContract
