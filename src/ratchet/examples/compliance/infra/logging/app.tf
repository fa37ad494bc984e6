# Application logs.

resource "aws_cloudwatch_log_group" "app" {
  name              = "/acme/app"
  retention_in_days = 7 # ratchet: choice 1, 7, 30, 90, 365, 731
}
