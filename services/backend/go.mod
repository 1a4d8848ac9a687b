module example.com/ai-infra/backend

go 1.23
