# Object storage: monthly reports for customers, and the access logs of everything else.

resource "aws_s3_bucket" "reports" {
  bucket = "acme-customer-reports"
  tags = {
    owner = "billing"
  }
}

resource "aws_s3_bucket" "logs" {
  bucket = "acme-access-logs"
  tags = {
    owner = "platform"
  }
}
